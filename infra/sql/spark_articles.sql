-- feedlake's Delta Lake tables in Spark SQL (Delta Lake 2.x/3.x, Databricks, or a Hive metastore).
-- Replace s3a://YOUR-BUCKET/YOUR-PREFIX with the lake URL given to `feedlake poll --lake`.
-- The schema, the partitions (published_month) and the live data files come from each table's
-- Delta log: no column list, no MSCK REPAIR as runs add files. Queries see the latest committed
-- version; files a crashed run or a compaction left behind are never read.

CREATE TABLE IF NOT EXISTS feedlake_articles
USING DELTA
LOCATION 's3a://YOUR-BUCKET/YOUR-PREFIX/articles';

-- Rows that failed validation, with why (failed_expectations) and at which stage.
CREATE TABLE IF NOT EXISTS feedlake_quarantine
USING DELTA
LOCATION 's3a://YOUR-BUCKET/YOUR-PREFIX/_quarantine';

-- One row per source and run: what its data-quality checks found (quality over time).
CREATE TABLE IF NOT EXISTS feedlake_validation_results
USING DELTA
LOCATION 's3a://YOUR-BUCKET/YOUR-PREFIX/_validation_results';

-- Edited articles are kept as versions (same article_id, new content_hash, or a re-extracted
-- body under a new run_id): the latest of each.
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

-- Time travel (each run is one table version; DESCRIBE HISTORY feedlake_articles lists them):
--   SELECT count(*) FROM feedlake_articles VERSION AS OF 12;
-- Incremental reads: the rows versions after N inserted or deleted (compactions show nothing),
-- like `feedlake changes --since-version N`:
--   SELECT * FROM table_changes('feedlake_articles', N + 1);
