"""The pipeline, one module per stage: decode (audio), silence and speech (vad), chunk
(chunking), log-mel (features), the CPU side in one call (preprocess), the model
(whisper) and assembly (transcript)."""
