"""Real-size twins (``real:<checkpoint>``): released configurations, random weights, built offline."""
