-- feedlake article table for Spark SQL / Databricks / Hive metastore: schema version 2.
-- Partition columns are discovered from the Hive-style paths (source_id=…/published_date=…).
CREATE TABLE IF NOT EXISTS feedlake_articles
USING parquet
OPTIONS (path 's3a://YOUR-BUCKET/YOUR-PREFIX/articles', mergeSchema 'true');  -- v1 files lack the v2 columns

MSCK REPAIR TABLE feedlake_articles;  -- after new partitions appear (or ALTER TABLE … RECOVER PARTITIONS)

CREATE OR REPLACE TEMPORARY VIEW feedlake_articles_latest AS
SELECT * EXCEPT (version_rank)
FROM (
  SELECT *, row_number() OVER (PARTITION BY article_id ORDER BY captured_at DESC, fetched_at DESC, run_id DESC) AS version_rank
  FROM feedlake_articles
)
WHERE version_rank = 1;
