"""Pure torch networks of the classic deep IQA models (imported lazily by the metrics)."""
