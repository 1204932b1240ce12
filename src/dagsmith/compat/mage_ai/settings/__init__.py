"""Mage import names under mage_ai.settings; re-exports only."""
