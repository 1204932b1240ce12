"""Mage import names under mage_ai.data_preparation.shared; re-exports only."""
