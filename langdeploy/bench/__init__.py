"""Latency and throughput measurement: a streaming client for served chains."""

from langdeploy.bench.client import RequestResult, Summary, run_load, stream_once, summarize

__all__ = ["RequestResult", "Summary", "run_load", "stream_once", "summarize"]
