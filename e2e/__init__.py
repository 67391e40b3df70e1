"""End-to-end and integration test infrastructure for ModelRatchet."""
