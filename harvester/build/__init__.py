"""The build phase: parent snapshot + staging parts → the next immutable snapshot version,
streamed. Only ids, hashes, a few numbers and the MinHash signature of each document stay in
memory; texts are read again, file by file, for the pairs that need verifying, the leakage
check and the shards, which are written through a bucketed shuffle on local disk."""
