"""Full text: the article's body from its page when the feed carries only a teaser."""
