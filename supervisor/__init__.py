"""The CueFarm supervisor: accepts jobs, stores them, matches frames to worker slots."""
