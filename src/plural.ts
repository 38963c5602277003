/** "1 job", "2 jobs", "0 jobs": a count with its noun, for messages a person reads. */
export function plural(count: number, noun: string, nouns = `${noun}s`): string {
  return `${count} ${count === 1 ? noun : nouns}`;
}
