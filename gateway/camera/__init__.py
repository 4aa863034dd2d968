"""The entry camera: frames from a stream or a snapshot URL (`source`), JPEG files on disk
(`snapshots`), the capture worker (`capture`), and the demo's synthetic camera (`synthetic`).

Nothing is imported here: `snapshots` serves the police pages of a gateway without a camera,
and must not pull in OpenCV (25 MiB resident) with it.
"""
