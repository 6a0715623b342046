//! Error classification for LLM provider failures (in progress).
