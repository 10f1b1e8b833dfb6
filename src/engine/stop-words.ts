// The function words and punctuation whose probability a super weight shifts (the paper's stop-word
// analysis): the most frequent English function words and punctuation, as the tokenizer splits them.
export const STOP_WORDS = [' the', ' of', ' and', ' to', ' a', ' in', ' is', ' that', ' for', ' it', ' as', ' was', ' with', ' on', '.', ',', ' The', '\n'];

/** Token ids of the stop words that are a single token for this tokenizer. */
export function stopWordTokenIds(encode: (text: string) => number[]): { words: string[]; ids: number[] } {
  const words: string[] = [];
  const ids: number[] = [];
  for (const word of STOP_WORDS) {
    const encoded = encode(word);
    if (encoded.length === 1 && !ids.includes(encoded[0]!)) {
      words.push(word);
      ids.push(encoded[0]!);
    }
  }
  return { words, ids };
}
