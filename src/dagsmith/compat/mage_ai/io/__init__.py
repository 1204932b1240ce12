"""Mage import names under mage_ai.io; re-exports only."""
