/** An error the CLI reports as it is, with its exit code (1: something failed, 2: bad input). */
export class ExitError extends Error {
  constructor(
    message: string,
    readonly code: number,
  ) {
    super(message);
  }
}
