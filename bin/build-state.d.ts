export declare const ROOT: string;
export declare const DIST: string;
export declare const STAMP: string;
export declare function newestSourceMtime(): number;
export declare function buildState(): 'fresh' | 'missing' | 'stale';
