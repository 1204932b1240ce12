"""Mage import names under mage_ai.orchestration; re-exports only."""
