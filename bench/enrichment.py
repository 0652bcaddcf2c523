"""GeoIP (City + ASN) + Tor lookups per second per core, vectorized and cached vs per-row UDFs.

Workload: 1,000,000 sourceIPAddress values with realistic reuse: 50,000 distinct public
addresses drawn with a Zipf-like law (a few addresses make most of the traffic, as NAT gateways,
CI runners and offices do), plus 10% `AWS Internal` and service names. The GeoIP databases are
MaxMind DB files written for the benchmark with 20,000 networks each (deeper trees than the
test databases); the Tor list has 1,300 exits. Each row gets three lookups: geoip_city,
geoip_asn and is_tor_exit.

Competitor, same run, same session: plain per-row Python UDFs (`@udf`) calling geoip2's
database readers (`city()`, `asn()`) and a set membership test, as the 2015 demo did.

    python -m bench.enrichment [--rows 1000000] [--runs 3]
"""

from __future__ import annotations

import argparse
import ipaddress
import random
import time

from bench.common import DATA, cores, markdown_table, median_time

NETWORKS = 20_000
DISTINCT_IPS = 50_000
SERVICE_NAMES = ("AWS Internal", "config.amazonaws.com", "cloudformation.amazonaws.com")


def build_databases(rng: random.Random) -> tuple[str, str, list[ipaddress.IPv4Network]]:
    """City and ASN databases (cached in bench/data) and the networks they hold: one network
    (/16 to /24) in each of 20,000 distinct public /16 blocks, so none overlaps another."""
    from loader.sample.enrichment_data import _write_mmdb

    city_path, asn_path = DATA / "bench-City.mmdb", DATA / "bench-ASN.mmdb"
    blocks = [b for b in range(1 << 16) if ipaddress.ip_network((b << 16, 16)).is_global]
    networks = [
        ipaddress.ip_network((block << 16, rng.choice((16, 18, 20, 22, 24))))
        for block in sorted(rng.sample(blocks, NETWORKS))
    ]
    if not city_path.exists():
        cities = {
            str(n): {
                "country": {"iso_code": f"C{i % 200}", "names": {"en": f"Country {i % 200}"}},
                "city": {"names": {"en": f"City {i % 5000}"}},
            }
            for i, n in enumerate(networks)
        }
        asns = {
            str(n): {
                "autonomous_system_number": 1000 + i % 3000,
                "autonomous_system_organization": f"Network {i % 3000}",
            }
            for i, n in enumerate(networks)
        }
        started = time.monotonic()
        _write_mmdb(str(city_path), "GeoLite2-City", cities, 1_700_000_000)
        _write_mmdb(str(asn_path), "GeoLite2-ASN", asns, 1_700_000_000)
        print(f"wrote benchmark databases in {time.monotonic() - started:.0f} s")
    return str(city_path), str(asn_path), networks


def workload(rows: int, rng: random.Random, networks) -> tuple[list[str], list[str]]:
    """(source addresses, Tor exits)."""
    distinct = []
    for _ in range(DISTINCT_IPS):
        if rng.random() < 0.9:
            net = rng.choice(networks)
            distinct.append(str(net.network_address + rng.randrange(net.num_addresses)))
        else:  # not in the databases
            distinct.append(str(ipaddress.IPv4Address(rng.getrandbits(32))))
    weights = [1 / (rank + 1) ** 1.1 for rank in range(len(distinct))]
    values = rng.choices(distinct, weights=weights, k=int(rows * 0.9))
    values += rng.choices(SERVICE_NAMES, k=rows - len(values))
    rng.shuffle(values)
    exits = rng.sample([d for d in distinct if ipaddress.ip_address(d).is_global], 1_300)
    return values, exits


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    DATA.mkdir(exist_ok=True)
    rng = random.Random(42)
    city_db, asn_db, networks = build_databases(rng)
    values, exits = workload(args.rows, rng, networks)
    tor_list = DATA / "bench-torbulkexitlist.txt"
    tor_list.write_text("\n".join(exits) + "\n")

    from pyspark.sql import SparkSession

    from udfs.spark import EnrichmentConfig, register_udfs

    spark = (
        SparkSession.builder.master("local[2]")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    ips = spark.createDataFrame([(v,) for v in values], "ip string").repartition(2).cache()
    ips.count()
    ips.createOrReplaceTempView("ips")
    register_udfs(
        spark,
        EnrichmentConfig(geoip_city_db=city_db, geoip_asn_db=asn_db, tor_exit_list=str(tor_list)),
        refresh=False,
    )
    _register_per_row(spark, city_db, asn_db, set(exits))
    distinct = len(set(values))

    def query(city: str, asn: str, tor: str):
        sql = f"SELECT count({city}(ip)), count({asn}(ip)), count_if({tor}(ip)) FROM ips"
        return lambda: spark.sql(sql).collect()[0]

    vectorized = query("geoip_city", "geoip_asn", "is_tor_exit")
    per_row = query("row_city", "row_asn", "row_tor")
    started = time.perf_counter()
    cold = vectorized()
    cold_time = time.perf_counter() - started
    warm_time, warm = median_time(vectorized, runs=args.runs, warmup=False)
    row_time, row_result = median_time(per_row, runs=args.runs, warmup=True)
    assert tuple(warm) == tuple(cold) == tuple(row_result), (warm, row_result)
    baseline_time, _ = median_time(lambda: spark.sql("SELECT count(ip) FROM ips").collect())

    n, core_count = len(values), 2

    def rates(seconds: float) -> list[str]:
        per_core = n / seconds / core_count
        return [f"{seconds:.2f}", f"{per_core:,.0f}", f"{3 * per_core:,.0f}"]

    print(
        f"\n{n:,} rows, {distinct:,} distinct values, 3 lookups per row (City, ASN, Tor); "
        f"local[2] on a {cores()}-core machine; median of {args.runs} runs\n"
    )
    header = ["path", "seconds", "rows/s per core", "lookups/s per core"]
    print(
        markdown_table(
            header,
            [
                ["vectorized pandas UDFs, cached, warm workers", *rates(warm_time)],
                ["vectorized pandas UDFs, cached, first query (cold)", *rates(cold_time)],
                ["per-row Python UDFs with geoip2 readers (2015 style)", *rates(row_time)],
                ["no UDF: count(ip) over the same cached rows", f"{baseline_time:.2f}", "", ""],
            ],
        )
    )
    print(f"\nspeed-up, warm: {row_time / warm_time:.1f}x; cold: {row_time / cold_time:.1f}x")
    print(f"results (non-null city, non-null ASN, Tor rows): {tuple(warm)}")


def _register_per_row(spark, city_db: str, asn_db: str, exits: set[str]) -> None:
    from pyspark.sql.functions import udf

    readers: dict[str, object] = {}

    def reader(path: str):
        import geoip2.database

        if path not in readers:
            readers[path] = geoip2.database.Reader(path)
        return readers[path]

    def row_city(ip):
        from udfs.ip import parse_ip

        address = parse_ip(ip)
        if address is None or not address.is_global:
            return None
        try:
            return reader(city_db).city(str(address)).city.name
        except Exception:  # AddressNotFoundError
            return None

    def row_asn(ip):
        from udfs.ip import parse_ip

        address = parse_ip(ip)
        if address is None or not address.is_global:
            return None
        try:
            return reader(asn_db).asn(str(address)).autonomous_system_number
        except Exception:
            return None

    def row_tor(ip):
        return ip in exits

    spark.udf.register("row_city", udf(row_city, "string"))
    spark.udf.register("row_asn", udf(row_asn, "bigint"))
    spark.udf.register("row_tor", udf(row_tor, "boolean"))


if __name__ == "__main__":
    main()
