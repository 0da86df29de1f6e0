/**
 * The texts of the embedding benchmark (`llama-kv bench --embed`): words of a fixed list
 * drawn by a seeded PRNG, each text grown to a token count drawn from [min, max] with the
 * model's own tokenizer, so that both sides embed the same tokens and the report can say
 * exactly how many.
 */

/** Common English words, lower case: every tokenizer splits them into few tokens. */
const WORDS = (
    'the of and to in is was for that on with as by at from this be are or an it not which have has had one were all their ' +
    'there been if more when will would who so no out up into do than only other new some could time these two may first then ' +
    'any like now over such our man me even most made after also did many before must through back years where much your way ' +
    'well down should because each just those people how too little state good very make world still own see men work long get ' +
    'here between both life being under never day same another know while last might us great old year off come since against ' +
    'go came right used take three states himself few house use during without again place around however home small found ' +
    'thought went say part once general high upon school every does got united left number course war until always away something ' +
    'fact though water less public put think almost hand enough far took head yet government system better set told nothing night ' +
    'end why called eyes find going look asked later knew point next program city business give group toward young days let room ' +
    'river stone cloud paper engine garden window silver market ocean valley forest letter signal bridge winter summer music'
).split(' ');

/** mulberry32: a small, fast 32-bit PRNG; the same seed gives the same sequence on every machine. */
export function mulberry32(seed: number): () => number {
    let a = seed >>> 0;
    return () => {
        a = (a + 0x6d2b79f5) >>> 0;
        let t = a;
        t = Math.imul(t ^ (t >>> 15), t | 1);
        t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
        return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
}

/** The benchmark's texts and their token counts (special tokens included, as they are embedded). */
export interface BenchTexts {
    texts: string[];
    tokens: number[];
}

/**
 * `count` texts, each of between `min` and `max` tokens by `tokenize` (the embedding
 * context's: special tokens added). A text takes words until it reaches its drawn length;
 * a last word that would pass `max` is left out.
 */
export function benchTexts(tokenize: (text: string) => ArrayLike<number>, count: number, min: number, max: number, seed: number): BenchTexts {
    if (!(Number.isInteger(min) && Number.isInteger(max) && min >= 1 && max >= min)) throw new Error(`Expected 1 <= min <= max but received ${min} and ${max}`);
    const random = mulberry32(seed);
    const texts: string[] = [];
    const tokens: number[] = [];
    for (let i = 0; i < count; i++) {
        const target = min + Math.floor(random() * (max - min + 1));
        let text = WORDS[Math.floor(random() * WORDS.length)];
        let n = tokenize(text).length;
        while (n < target) {
            const next = `${text} ${WORDS[Math.floor(random() * WORDS.length)]}`;
            const m = tokenize(next).length;
            if (m > max) break;
            text = next;
            n = m;
        }
        texts.push(text);
        tokens.push(n);
    }
    return { texts, tokens };
}
