// BERT's tokenization (BasicTokenizer then WordpieceTokenizer, as in
// tokenization.FullTokenizer) of ASCII texts, for tokenization.BatchTokenizer.
//
// Only texts whose every byte is ASCII are tokenized here; any other text is
// reported back (row length -1) and goes through the Python tokenizer, which knows
// Unicode categories, accents and CJK characters. For ASCII text BasicTokenizer
// reduces to: delete control characters other than \t \n \r, treat those three
// and the space as separators, lower-case A-Z for uncased models, and make every
// ASCII character that is not a letter, digit or space a token of its own.
//
// C interface (loaded with ctypes, which releases the GIL during the calls):
//   bert_wordpiece_new(...)       builds the vocab tables, returns a handle
//   bert_wordpiece_free(handle)
//   bert_wordpiece_tokenize(...)  tokenizes many texts, on several threads

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace {

// The first 7 bytes of a string (zero-padded) and its size (capped at 255) in
// the top byte: most vocab tokens and words are shorter than 8 bytes, so for them
// comparing this one number compares the strings.
inline uint64_t ShortKey(const char* data, size_t size) {
  uint64_t key = 0;
  const size_t head = size < 7 ? size : 7;
  for (size_t i = 0; i < head; ++i) {
    key |= static_cast<uint64_t>(static_cast<unsigned char>(data[i])) << (8 * i);
  }
  return key | (static_cast<uint64_t>(size < 255 ? size : 255) << 56);
}

inline uint64_t Mix(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  return x;
}

inline uint64_t HashBytes(uint64_t short_key, const char* data, size_t size) {
  uint64_t hash = Mix(short_key);
  for (size_t i = 7; i < size; ++i) {  // the bytes past the short key
    hash = (hash ^ static_cast<unsigned char>(data[i])) * 1099511628211ull;
  }
  return Mix(hash);
}

// An open-addressing hash table from byte strings to ids. A slot is 16 bytes, so
// the table of a 30,522-token vocab (65,536 slots) stays in a core's L2 cache.
class StringTable {
 public:
  void Reserve(size_t count) {
    size_t capacity = 16;
    while (capacity < 2 * count) capacity <<= 1;
    slots_.assign(capacity, Slot());
    mask_ = capacity - 1;
  }

  void Insert(const char* data, size_t size, int64_t id) {
    const uint64_t key = ShortKey(data, size);
    size_t i = HashBytes(key, data, size) & mask_;
    while (slots_[i].id >= 0) {
      if (Matches(slots_[i], key, data, size)) {
        slots_[i].id = static_cast<int32_t>(id);
        return;
      }
      i = (i + 1) & mask_;
    }
    // The whole string is kept (its size first) for strings of 7 bytes or more.
    uint32_t offset = 0;
    if (size >= 7) {
      offset = static_cast<uint32_t>(long_bytes_.size());
      const uint64_t stored_size = size;
      long_bytes_.append(reinterpret_cast<const char*>(&stored_size), sizeof(stored_size));
      long_bytes_.append(data, size);
    }
    slots_[i] = Slot{key, offset, static_cast<int32_t>(id)};
  }

  // The id of the string, or -1.
  int64_t Find(const char* data, size_t size) const {
    const uint64_t key = ShortKey(data, size);
    size_t i = HashBytes(key, data, size) & mask_;
    while (slots_[i].id >= 0) {
      if (Matches(slots_[i], key, data, size)) return slots_[i].id;
      i = (i + 1) & mask_;
    }
    return -1;
  }

 private:
  struct Slot {
    uint64_t key = 0;
    uint32_t offset = 0;
    int32_t id = -1;
  };

  bool Matches(const Slot& slot, uint64_t key, const char* data, size_t size) const {
    if (slot.key != key) return false;
    if (size < 7) return true;
    uint64_t stored_size;
    std::memcpy(&stored_size, long_bytes_.data() + slot.offset, sizeof(stored_size));
    return stored_size == size &&
           std::memcmp(long_bytes_.data() + slot.offset + sizeof(stored_size) + 7,
                       data + 7, size - 7) == 0;
  }

  std::vector<Slot> slots_;
  size_t mask_ = 0;
  std::string long_bytes_;
};

// What tokenization.BasicTokenizer treats as punctuation among ASCII characters:
// everything printable that is not a letter, a digit or the space.
inline bool IsAsciiPunctuation(unsigned char c) {
  return (c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) ||
         (c >= 123 && c <= 126);
}

class Wordpiece {
 public:
  Wordpiece(const char* vocab_bytes, const int64_t* starts, const int64_t* sizes,
            const int64_t* ids, int64_t count, bool lower_case,
            int64_t max_chars_per_word, int64_t unk_id)
      : lower_case_(lower_case), max_chars_(max_chars_per_word), unk_id_(unk_id) {
    words_.Reserve(count);
    int64_t suffixes = 0;
    for (int64_t i = 0; i < count; ++i) {
      const char* token = vocab_bytes + starts[i];
      if (sizes[i] >= 2 && token[0] == '#' && token[1] == '#') ++suffixes;
    }
    suffixes_.Reserve(suffixes);
    for (int64_t i = 0; i < count; ++i) {
      const char* token = vocab_bytes + starts[i];
      words_.Insert(token, sizes[i], ids[i]);
      // "##ing" is looked up as "ing" among the pieces that continue a word.
      if (sizes[i] >= 2 && token[0] == '#' && token[1] == '#') {
        suffixes_.Insert(token + 2, sizes[i] - 2, ids[i]);
      }
    }
  }

  // Tokenizes one text into `out` (room for `size` ids: every id takes at least
  // one byte of the text). Returns the number of ids, or -1 for a text that is
  // not all ASCII.
  int64_t TokenizeText(const char* text, size_t size, int64_t* out,
                       std::string* word) const {
    int64_t count = 0;
    word->clear();
    for (size_t i = 0; i < size; ++i) {
      const unsigned char c = static_cast<unsigned char>(text[i]);
      if (c >= 0x80) return -1;  // the ids written so far are not counted
      if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
        count += FlushWord(word, out + count);
      } else if (c < 32 || c == 127) {
        // Deleted, as BasicTokenizer._clean_text does: "a\x01b" is one word.
      } else if (IsAsciiPunctuation(c)) {
        count += FlushWord(word, out + count);
        count += Pieces(text + i, 1, out + count);
      } else {
        word->push_back(lower_case_ && c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c);
      }
    }
    count += FlushWord(word, out + count);
    return count;
  }

 private:
  int64_t FlushWord(std::string* word, int64_t* out) const {
    if (word->empty()) return 0;
    const int64_t count = Pieces(word->data(), word->size(), out);
    word->clear();
    return count;
  }

  // WordpieceTokenizer.tokenize of one basic token: greedy longest match first,
  // the unknown token for a word longer than the limit or with no split.
  int64_t Pieces(const char* token, size_t size, int64_t* out) const {
    if (static_cast<int64_t>(size) > max_chars_) {
      out[0] = unk_id_;
      return 1;
    }
    int64_t count = 0;
    size_t start = 0;
    while (start < size) {
      int64_t id = -1;
      size_t end = size;
      for (; end > start; --end) {
        id = start == 0 ? words_.Find(token, end)
                        : suffixes_.Find(token + start, end - start);
        if (id >= 0) break;
      }
      if (id < 0) {
        out[0] = unk_id_;
        return 1;
      }
      out[count++] = id;
      start = end;
    }
    return count;
  }

  StringTable words_;
  StringTable suffixes_;
  bool lower_case_;
  int64_t max_chars_;
  int64_t unk_id_;
};

// Tokenizes texts [begin, end), writing their ids from `out` on. Returns how many.
int64_t TokenizeRange(const Wordpiece& wordpiece, const char* data,
                      const int64_t* offsets, int64_t begin, int64_t end,
                      int64_t* out, int64_t* row_lengths) {
  std::string word;
  int64_t count = 0;
  for (int64_t t = begin; t < end; ++t) {
    const int64_t n = wordpiece.TokenizeText(data + offsets[t], offsets[t + 1] - offsets[t],
                                             out + count, &word);
    row_lengths[t] = n;
    if (n > 0) count += n;
  }
  return count;
}

}  // namespace

extern "C" {

// Vocab token i is vocab_bytes[starts[i]:starts[i] + sizes[i]] (UTF-8), its id
// ids[i] (0..2**31-1). Returns a handle for the calls below.
void* bert_wordpiece_new(const char* vocab_bytes, const int64_t* starts,
                         const int64_t* sizes, const int64_t* ids, int64_t count,
                         int32_t lower_case, int64_t max_chars_per_word,
                         int64_t unk_id) {
  return new Wordpiece(vocab_bytes, starts, sizes, ids, count, lower_case != 0,
                       max_chars_per_word, unk_id);
}

void bert_wordpiece_free(void* handle) { delete static_cast<Wordpiece*>(handle); }

// Tokenizes num_texts texts: text t is data[offsets[t]:offsets[t + 1]] (UTF-8).
// Writes the ids of all ASCII texts, in order, to `ids` (room for
// offsets[num_texts] - offsets[0] ids) and each text's number of ids to
// row_lengths[t], -1 for a text with a non-ASCII byte (which adds no ids).
// Uses up to num_threads threads, each on a contiguous run of texts of at least
// 64 KiB. Returns the number of ids written.
int64_t bert_wordpiece_tokenize(const void* handle, const char* data,
                                const int64_t* offsets, int64_t num_texts,
                                int32_t num_threads, int64_t* ids,
                                int64_t* row_lengths) {
  const Wordpiece& wordpiece = *static_cast<const Wordpiece*>(handle);
  if (num_texts <= 0) return 0;
  const int64_t first = offsets[0];
  const int64_t total = offsets[num_texts] - first;
  const int64_t min_bytes = 1 << 16;
  int64_t parts = std::max<int64_t>(1, std::min<int64_t>(num_threads, total / min_bytes));
  parts = std::min(parts, num_texts);
  if (parts == 1) {
    return TokenizeRange(wordpiece, data, offsets, 0, num_texts, ids, row_lengths);
  }
  // Runs of texts with about the same number of bytes. Each part writes its ids
  // from the byte position of its first text (a text has at most as many ids as
  // bytes), and the parts are moved together afterwards.
  std::vector<int64_t> bounds(parts + 1, num_texts);
  bounds[0] = 0;
  for (int64_t p = 1; p < parts; ++p) {
    const int64_t target = first + total * p / parts;
    bounds[p] = std::max<int64_t>(
        bounds[p - 1],
        std::lower_bound(offsets, offsets + num_texts, target) - offsets);
  }
  std::vector<int64_t> counts(parts, 0);
  std::vector<std::thread> threads;
  for (int64_t p = 1; p < parts; ++p) {
    threads.emplace_back([&, p] {
      counts[p] = TokenizeRange(wordpiece, data, offsets, bounds[p], bounds[p + 1],
                                ids + (offsets[bounds[p]] - first), row_lengths);
    });
  }
  counts[0] = TokenizeRange(wordpiece, data, offsets, bounds[0], bounds[1], ids,
                            row_lengths);
  for (std::thread& thread : threads) thread.join();
  int64_t written = counts[0];
  for (int64_t p = 1; p < parts; ++p) {
    std::memmove(ids + written, ids + (offsets[bounds[p]] - first),
                 counts[p] * sizeof(int64_t));
    written += counts[p];
  }
  return written;
}

}  // extern "C"
