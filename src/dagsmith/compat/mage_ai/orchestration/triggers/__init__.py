"""Mage import names under mage_ai.orchestration.triggers; re-exports only."""
