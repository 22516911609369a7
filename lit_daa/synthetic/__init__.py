"""The embedded default: a tiny offline model, an in-process tokenizer and a synthetic preference world."""
