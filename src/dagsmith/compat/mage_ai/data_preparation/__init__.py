"""Mage import names under mage_ai.data_preparation; re-exports only."""
