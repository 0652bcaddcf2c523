"""Where the logs leave us blind: log delivery per account, region and hour, delivery gaps
(judged by :mod:`loader.coverage.gaps`), the trail stops the events report, and gap alerts."""
