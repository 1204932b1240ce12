"""Small helpers every layer may use; they import nothing of dagsmith's but ``errors``.

``fs`` (atomic file writes), ``clock`` (UTC now, ISO 8601 parsing), ``values`` (config
flags). Each exists once here so behaviour cannot drift between copies.
"""
