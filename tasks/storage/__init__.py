"""Files on disk and in S3: checksums, atomic folders, the store of finished work."""
