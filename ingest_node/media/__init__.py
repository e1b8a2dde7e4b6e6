"""The PyAV media pipeline of the ingest node: ladders, encoder selection, transcoding, HLS output."""
