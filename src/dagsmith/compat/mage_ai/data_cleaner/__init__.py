"""Mage import names under mage_ai.data_cleaner; re-exports only."""
