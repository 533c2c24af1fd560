"""Hand-written SQuAD v1.1 / v2.0 fixtures for the tests (nothing from the public sets).

The fixtures exercise what SQuAD readers get wrong: runs of spaces, tabs, newlines
and U+202F inside contexts, accented and non-Latin text, answers inside a longer
whitespace word ("(1895-1943)."), answers at the very start and end of a context,
long contexts that need several windows, and unanswerable questions.
"""

import json
import random
from pathlib import Path

import tokenization

LONG_WORDS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf",
              "hotel", "india", "juliet", "kilo", "lima", "mike", "november",
              "oscar", "papa", "quebec", "romeo", "sierra", "tango", "uniform",
              "victor", "whiskey", "xray", "yankee", "zulu"]


def _long_context():
  """A context of 52 words for window tests; each word unique at its position."""
  words = [f"{w}" for w in LONG_WORDS] + [f"{w}s" for w in LONG_WORDS]
  return " ".join(words)


def v1_data():
  """A small SQuAD v1.1 "data" list; answers carry correct character offsets."""
  rivers = ("The  Amazon River\tflows through Brazil (1895-1943).\nIt is the "
            "largest river in the world by volume.")
  cafe = ("Café Müller opened in 1921 in Zürich\u202fcity. The owner was Hans "
          "Brückner, a baker from Genève.")
  long_context = _long_context()

  def qa(qid, question, context, answer, occurrence=0):
    start = -1
    for _ in range(occurrence + 1):
      start = context.index(answer, start + 1)
    return {"id": qid, "question": question,
            "answers": [{"text": answer, "answer_start": start}]}

  return [
      {"title": "Rivers", "paragraphs": [{
          "context": rivers,
          "qas": [
              qa("r1", "Which country does the Amazon flow through?", rivers,
                 "Brazil"),
              qa("r2", "In which year did it start?", rivers, "1895"),
              qa("r3", "What is the largest river?", rivers, "The  Amazon River"),
              qa("r4", "By what is it the largest?", rivers, "volume."),
          ]}]},
      {"title": "Café", "paragraphs": [{
          "context": cafe,
          "qas": [
              qa("c1", "Who was the owner?", cafe, "Hans Brückner"),
              qa("c2", "Where is Café Müller?", cafe, "Zürich"),
              qa("c3", "When did it open?", cafe, "1921"),
          ]}]},
      {"title": "Long", "paragraphs": [{
          "context": long_context,
          "qas": [
              qa("l1", "what comes first?", long_context, "alpha"),
              qa("l2", "what is in the middle?", long_context, "mike november"),
              qa("l3", "what comes after sierras?", long_context, "tangos"),
              qa("l4", "what comes last?", long_context, "zulus"),
              qa("l5", "what follows zulu?", long_context, "alphas bravos"),
          ]}]},
  ]


def v2_data():
  """A SQuAD v2.0 "data" list: the v1.1 questions plus unanswerable ones."""
  data = v1_data()
  for article in data:
    for paragraph in article["paragraphs"]:
      for q in paragraph["qas"]:
        q["is_impossible"] = False
  data[0]["paragraphs"][0]["qas"].append({
      "id": "r5", "question": "Which country does the Nile flow through?",
      "answers": [], "plausible_answers": [{"text": "Brazil", "answer_start": 32}],
      "is_impossible": True})
  data[2]["paragraphs"][0]["qas"].append({
      "id": "l6", "question": "what comes after omega?", "answers": [],
      "is_impossible": True})
  return data


def write_squad(path: Path, data, version="1.1") -> Path:
  path.write_text(json.dumps({"version": version, "data": data}, ensure_ascii=False),
                  encoding="utf-8")
  return path


def vocab_tokens_for(data, drop=()):
  """A WordPiece vocab covering every basic token of the fixture texts.

  Args:
    data: SQuAD "data" list.
    drop: basic tokens left out, so that they split into word pieces or [UNK].

  Returns:
    list of vocab tokens.
  """
  basic = tokenization.BasicTokenizer(do_lower_case=True)
  words = set()
  for article in data:
    for paragraph in article["paragraphs"]:
      words.update(basic.tokenize(paragraph["context"]))
      for q in paragraph["qas"]:
        words.update(basic.tokenize(q["question"]))
        for a in q.get("answers", []):
          words.update(basic.tokenize(a["text"]))
  words -= set(drop)
  tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + sorted(words)
  # Sub-words so that "tangos" -> tango ##s and "brazil" -> bra ##zil.
  return tokens + ["##s", "bra", "##zil"]


def write_squad_vocab(path: Path, data, drop=("brazil",)) -> Path:
  path.write_text("\n".join(vocab_tokens_for(data, drop)) + "\n", encoding="utf-8")
  return path


COUNTRIES = ["norway", "chile", "kenya", "peru", "spain", "japan", "egypt", "india",
             "nepal", "cuba", "iran", "mali"]
CITIES = ["oslo", "santiago", "nairobi", "lima", "madrid", "tokyo", "cairo", "delhi",
          "kathmandu", "havana", "tehran", "bamako"]
RIVERS = ["glomma", "loa", "tana", "ucayali", "tagus", "shinano", "nile", "ganges",
          "koshi", "cauto", "karun", "niger"]


def synthetic_data(n_paragraphs=12, seed=0, unanswerable=False):
  """A learnable SQuAD-style set: capitals and rivers of made-up sentences.

  Args:
    n_paragraphs: paragraphs (two or three questions each).
    seed: random seed.
    unanswerable: add an is_impossible question per paragraph (v2.0).

  Returns:
    SQuAD "data" list.
  """
  rng = random.Random(seed)
  paragraphs = []
  for i in range(n_paragraphs):
    k = i % len(COUNTRIES)
    filler = " ".join(rng.choice(["it", "is", "a", "nice", "place", "and", "very",
                                  "old"]) for _ in range(rng.randint(2, 6)))
    context = (f"{filler} . the capital of {COUNTRIES[k]} is {CITIES[k]} . "
               f"the river of {COUNTRIES[k]} is the {RIVERS[k]} .")
    qas = [
        {"id": f"p{i}-capital", "question": f"what is the capital of {COUNTRIES[k]} ?",
         "answers": [{"text": CITIES[k],
                      "answer_start": context.index(f" is {CITIES[k]}") + 4}]},
        {"id": f"p{i}-river", "question": f"what is the river of {COUNTRIES[k]} ?",
         "answers": [{"text": RIVERS[k],
                      "answer_start": context.index(f"the {RIVERS[k]} .") + 4}]},
    ]
    if unanswerable:
      for q in qas:
        q["is_impossible"] = False
      qas.append({"id": f"p{i}-mountain",
                  "question": f"what is the mountain of {COUNTRIES[k]} ?",
                  "answers": [], "is_impossible": True})
    paragraphs.append({"context": context, "qas": qas})
  return [{"title": "Synthetic", "paragraphs": paragraphs}]


def synthetic_vocab_tokens():
  tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", "?", "what", "the",
            "capital", "of", "river", "mountain", "is", "it", "a", "nice", "place",
            "and", "very", "old"]
  return tokens + COUNTRIES + CITIES + RIVERS
