-- feedlake's Delta Lake tables in Amazon Athena (engine version 3; the Glue Data Catalog holds them).
-- Replace s3://YOUR-BUCKET/YOUR-PREFIX with the lake URL given to `feedlake poll --lake`.
-- Athena reads the schema, the partitions (published_month) and the live data files from each
-- table's Delta log: no column list (Athena refuses one for Delta tables), no partition
-- projection, no MSCK REPAIR or crawler as runs add files. Queries see the latest committed
-- version; files a crashed run or a compaction left behind are never read. Athena has no Delta
-- time travel: use Spark, Trino, DuckDB or deltalake for older versions and changes.

CREATE EXTERNAL TABLE IF NOT EXISTS feedlake_articles
LOCATION 's3://YOUR-BUCKET/YOUR-PREFIX/articles/'
TBLPROPERTIES ('table_type' = 'DELTA');

-- Rows that failed validation, with why (failed_expectations) and at which stage.
CREATE EXTERNAL TABLE IF NOT EXISTS feedlake_quarantine
LOCATION 's3://YOUR-BUCKET/YOUR-PREFIX/_quarantine/'
TBLPROPERTIES ('table_type' = 'DELTA');

-- One row per source and run: what its data-quality checks found (quality over time).
CREATE EXTERNAL TABLE IF NOT EXISTS feedlake_validation_results
LOCATION 's3://YOUR-BUCKET/YOUR-PREFIX/_validation_results/'
TBLPROPERTIES ('table_type' = 'DELTA');

-- Edited articles are kept as versions (same article_id, new content_hash, or a re-extracted
-- body under a new run_id): the latest of each. Glue keeps the schema Athena found at creation;
-- after a schema change (a new article schema version), drop and re-create the table and view.
CREATE OR REPLACE VIEW feedlake_articles_latest AS
SELECT
  article_id,
  source_id,
  feed_url,
  guid,
  url,
  title,
  summary_text,
  content_text,
  content_html,
  authors,
  categories,
  enclosures,
  language,
  published_at,
  updated_at,
  published_raw,
  date_source,
  fetched_at,
  content_hash,
  run_id,
  capture_source,
  captured_at,
  content_source,
  page_url,
  page_status,
  page_fetched_at,
  published_date,
  published_month
FROM (
  SELECT a.*, row_number() OVER (PARTITION BY article_id ORDER BY captured_at DESC, fetched_at DESC, run_id DESC) AS version_rank
  FROM feedlake_articles a
) ranked
WHERE version_rank = 1;

-- A month prunes partitions; a source (or a time range) skips files by their Delta statistics:
-- SELECT title, published_at FROM feedlake_articles_latest
-- WHERE published_month BETWEEN '2024-11' AND '2024-12' AND source_id = 'centcom-press-releases';
