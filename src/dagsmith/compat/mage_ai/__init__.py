"""Mage's ``mage_ai`` package names, mapped onto dagsmith (re-exports only).

Reached through ``dagsmith.blocks.mage_imports`` while block code runs; never put
on ``sys.path`` as ``mage_ai`` itself.
"""
