//! Latency CDF charts as SVG.
