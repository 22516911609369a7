"""Prompt templates of the pairwise judges; placeholders {post}, {summary_a}, {summary_b}.

Templates are filled with `str.format`, so a literal brace in a template of your own is written `{{` or `}}`.
"""

# The TL;DR judge of the DPO paper (Rafailov et al. 2023, appendix), in our own words: which summary keeps the
# post's most important points without unimportant or irrelevant detail, one comparing sentence, then the choice.
TLDR_JUDGE_TEMPLATE = """Here is a post from an online forum, followed by two candidate summaries of it.

Post:
{post}

Summary A:
{summary_a}

Summary B:
{summary_b}

Which summary does the better job of capturing the most important points of the post while leaving out details \
that are unimportant or beside the point? Answer in exactly two lines. On the first line, compare the two \
summaries in a single sentence and say which one is better. On the second line, write "Preferred:" followed only \
by "A" or "B". The format is:
Comparison: <one-sentence comparison and explanation>
Preferred: <"A" or "B">
"""
