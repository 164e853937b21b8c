"""WebSub: subscribe to a feed's hub and ingest the documents it pushes."""
