// releaseAudit(expectHead: 'sha256:...', env: 'prod'): `release audit verify`; archives the
// ledger head (release-artifacts/ledger-head.txt) outside the state directory and returns
// it. With env, also archives that environment's history (`release --json audit --env E`).
// See releaseAudit.txt.

String call(Map args = [:]) {
    List extra = ["RELEASE_EXPECT_HEAD=${args.expectHead ?: ''}", "RELEASE_ENV=${args.env ?: ''}"]
    String head = null
    releaseCli.withRelease(args, extra, false) {
        String script = args.expectHead ? '"$RELEASE_BIN" audit verify --expect-head "$RELEASE_EXPECT_HEAD" >release-artifacts/ledger-verify.txt'
                : '"$RELEASE_BIN" audit verify >release-artifacts/ledger-verify.txt'
        sh 'mkdir -p release-artifacts'
        int code = releaseCli.execute(script)
        String output = readFile('release-artifacts/ledger-verify.txt')
        head = headOf(output)
        if (head) {
            writeFile(file: 'release-artifacts/ledger-head.txt', text: head + '\n')
        }
        if (args.env) {
            releaseCli.execute('"$RELEASE_BIN" --json audit --env "$RELEASE_ENV" >"release-artifacts/audit-$RELEASE_ENV.json"')
        }
        archiveArtifacts(artifacts: 'release-artifacts/ledger-*.txt, release-artifacts/audit-*.json', allowEmptyArchive: true)
        releaseCli.failOn('release audit verify', code)
        if (!head) {
            error("release audit verify printed no `head:` line:\n${output}")
        }
    }
    return head
}

/** The hash on the `head: sha256:...` line of `release audit verify`'s output. */
String headOf(String output) {
    for (String line in output.readLines()) {
        String trimmed = line.trim()
        if (trimmed.startsWith('head:')) {
            return trimmed.substring('head:'.length()).trim()
        }
    }
    return null
}
