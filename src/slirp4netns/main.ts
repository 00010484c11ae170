// slirp4netns mode: the program started under the name `slirp4netns`
// (`ln -s slirpnetstack slirp4netns`) takes slirp4netns 1.2's command line.
// Today that is the command line alone: --help (the text RootlessKit and
// Podman read to learn the features), --version, and slirp4netns's messages
// and exit codes for a command line it refuses. An option this mode does not
// carry out is refused by name; running the network this way is not there
// yet and says so (exit 1), never pretends to start.
import { parseSlirp4netnsArgs, unsupportedOption } from "./cli.ts";

/** The slirp4netns release whose command line this mode takes. */
const COMPATIBLE_WITH = "1.2.0";
const EXIT_FAILURE = 1;

export async function slirp4netnsMain(args: string[], argv0: string, build: { version: string; time: string }): Promise<never> {
  const outcome = parseSlirp4netnsArgs(args, argv0);
  switch (outcome.kind) {
    case "exit":
      if (outcome.stderr !== "") await Bun.write(Bun.stderr, outcome.stderr);
      await Bun.write(Bun.stdout, outcome.stdout);
      process.exit(outcome.code);
    case "version":
      await Bun.write(Bun.stdout, `slirp4netns version ${COMPATIBLE_WITH}\nslirpnetstack version ${build.version}\nbuild time ${build.time}\n`);
      process.exit(0);
    case "run": {
      const unsupported = unsupportedOption(outcome.config);
      if (unsupported !== null) {
        await Bun.write(Bun.stderr, `${argv0}: ${unsupported}\n`);
        process.exit(EXIT_FAILURE);
      }
      await Bun.write(Bun.stderr, `${argv0}: slirp4netns mode does not run the network yet (only --help, --version and the command line's checks); use slirpnetstack -netns\n`);
      process.exit(EXIT_FAILURE);
    }
  }
}
