"""Live ingest: RTMP publishers with stream keys, one supervised worker process per live stream."""
