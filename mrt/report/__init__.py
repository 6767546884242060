"""Report: the analysis page (headline figures, plots), the trace viewer and the comparison page.
Reads summaries and trace records; never imports an orchestrator."""
