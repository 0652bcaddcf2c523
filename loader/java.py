"""Find a usable Java (17+) before Spark tries and fails with a page of stack trace."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

MIN_JAVA = 17
INSTALL_HINT = (
    "install a Java 17+ runtime (Debian/Ubuntu: apt-get install -y openjdk-17-jre-headless; "
    "macOS: brew install openjdk@17) or set JAVA_HOME to one"
)


def java_executable() -> str | None:
    """Return the java binary Spark will use: $JAVA_HOME/bin/java, else java on PATH."""
    home = os.environ.get("JAVA_HOME")
    if home:
        candidate = os.path.join(home, "bin", "java")
        if os.access(candidate, os.X_OK):
            return candidate
    return shutil.which("java")


def parse_java_major(version_output: str) -> int | None:
    """Major version from ``java -version`` output ('1.8.0_292' -> 8, '17.0.15' -> 17)."""
    match = re.search(r'version "(\d+)(?:\.(\d+))?', version_output)
    if not match:
        return None
    major = int(match.group(1))
    if major == 1 and match.group(2):
        return int(match.group(2))
    return major


def java_problem() -> str | None:
    """One line saying why no usable Java is found, or None when Java 17+ is there."""
    exe = java_executable()
    if exe is None:
        return f"no Java found (needed by Spark): {INSTALL_HINT}"
    try:
        proc = subprocess.run([exe, "-version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"cannot run {exe} -version ({exc}): {INSTALL_HINT}"
    major = parse_java_major(proc.stderr + proc.stdout)
    if major is None:
        return f"cannot tell the version of {exe}: {INSTALL_HINT}"
    if major < MIN_JAVA:
        return f"Java {major} at {exe} is too old, Spark 4 needs {MIN_JAVA}+: {INSTALL_HINT}"
    return None
