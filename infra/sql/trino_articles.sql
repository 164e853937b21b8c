-- feedlake's Delta Lake tables in Trino's Delta Lake connector (a catalog named `delta` here, on a
-- Hive metastore or Glue, with delta.register-table-procedure.enabled=true in its properties).
-- Replace s3://YOUR-BUCKET/YOUR-PREFIX with the lake URL given to `feedlake poll --lake`.
-- Registering reads the schema, the partitions (published_month) and the live data files from
-- each table's Delta log: no column list. Queries see the latest committed version; files a
-- crashed run or a compaction left behind are never read.

CREATE SCHEMA IF NOT EXISTS delta.feedlake;

CALL delta.system.register_table(
  schema_name => 'feedlake',
  table_name => 'articles',
  table_location => 's3://YOUR-BUCKET/YOUR-PREFIX/articles'
);

-- Rows that failed validation, with why (failed_expectations) and at which stage.
CALL delta.system.register_table(
  schema_name => 'feedlake',
  table_name => 'quarantine',
  table_location => 's3://YOUR-BUCKET/YOUR-PREFIX/_quarantine'
);

-- One row per source and run: what its data-quality checks found (quality over time).
CALL delta.system.register_table(
  schema_name => 'feedlake',
  table_name => 'validation_results',
  table_location => 's3://YOUR-BUCKET/YOUR-PREFIX/_validation_results'
);

-- Edited articles are kept as versions (same article_id, new content_hash, or a re-extracted
-- body under a new run_id): the latest of each.
CREATE OR REPLACE VIEW delta.feedlake.articles_latest AS
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
  FROM delta.feedlake.articles a
) ranked
WHERE version_rank = 1;

-- Time travel (each run is one table version; SELECT * FROM delta.feedlake."articles$history"):
--   SELECT count(*) FROM delta.feedlake.articles FOR VERSION AS OF 12;
-- Incremental reads: the rows versions after N inserted or deleted (compactions show nothing),
-- like `feedlake changes --since-version N`:
--   SELECT * FROM TABLE(delta.system.table_changes(schema_name => 'feedlake', table_name => 'articles', since_version => N));
