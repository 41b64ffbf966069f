"""Token classification (named-entity recognition): data, tags, entity metrics and the name probe."""
