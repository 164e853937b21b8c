-- feedlake article table for Amazon Athena (also Glue/Trino Hive connector): schema version 2.
-- Replace s3://YOUR-BUCKET/YOUR-PREFIX with the lake URL given to `feedlake poll --lake`.
-- Partition projection: no MSCK REPAIR / crawler needed as new sources and days arrive.
CREATE EXTERNAL TABLE IF NOT EXISTS feedlake_articles (
  article_id     string,
  feed_url       string,
  guid           string,
  url            string,
  title          string,
  summary_text   string,
  content_text   string,
  content_html   string,
  authors        array<string>,
  categories     array<string>,
  enclosures     array<struct<url:string, type:string, length:bigint>>,
  language       string,
  published_at   timestamp,
  updated_at     timestamp,
  published_raw  string,
  date_source    string,
  fetched_at     timestamp,
  content_hash   string,
  run_id         string,
  capture_source string,
  captured_at    timestamp,
  content_source string,
  page_url       string,
  page_status    string,
  page_fetched_at timestamp
)
PARTITIONED BY (source_id string, published_date date)
STORED AS PARQUET
LOCATION 's3://YOUR-BUCKET/YOUR-PREFIX/articles/'
TBLPROPERTIES (
  'projection.enabled' = 'true',
  'projection.source_id.type' = 'injected',
  'projection.published_date.type' = 'date',
  'projection.published_date.format' = 'yyyy-MM-dd',
  'projection.published_date.range' = '1990-01-01,NOW+1DAYS',
  'storage.location.template' = 's3://YOUR-BUCKET/YOUR-PREFIX/articles/source_id=${source_id}/published_date=${published_date}/',
  'parquet.compression' = 'ZSTD'
);

-- Edited articles are kept as versions (same article_id, new content_hash): the latest of each.
CREATE OR REPLACE VIEW feedlake_articles_latest AS
SELECT *
FROM (
  SELECT a.*, row_number() OVER (PARTITION BY article_id ORDER BY captured_at DESC, fetched_at DESC, run_id DESC) AS version_rank
  FROM feedlake_articles a
)
WHERE version_rank = 1;

-- With 'injected' projection, queries must name the source(s):
-- SELECT title, published_at FROM feedlake_articles_latest
-- WHERE source_id = 'centcom-press-releases' AND published_date >= DATE '2024-12-01';
