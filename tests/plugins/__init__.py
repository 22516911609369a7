"""Small real classes the tests select by class_path, as a user would select their own."""
