"""The sources file: load and check it, edit it, OPML in and out, feed discovery."""
