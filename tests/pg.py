"""PostgreSQL fixtures (placeholder; replaced by the throwaway-cluster fixture)."""
