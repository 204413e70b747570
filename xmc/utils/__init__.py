"""Small shared helpers: sparse layout, model directories, resource usage."""
