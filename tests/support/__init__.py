"""What the tests share that is not a fixture: paths, servers, images, case tables."""
