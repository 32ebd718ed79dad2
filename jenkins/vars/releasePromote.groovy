// releasePromote(version: '1.4.0-b42', to: 'prod', approvedBy: 'alice', junit: '...', dryRun: false):
// the gate, then a deploy of DEV's exact digests. Publishes the gate's JUnit and archives
// the rendered stack whatever the outcome. See releasePromote.txt.

void call(Map args = [:]) {
    String version = args.version ?: env.RELEASE_VERSION
    String target = args.to
    if (!version || !target) {
        error('releasePromote: pass version and to')
    }
    String report = releaseCli.junitPath(args, args.dryRun ? 'gate' : 'promote', target)
    List extra = ["RELEASE_VERSION=${version}", "RELEASE_ENV=${target}", "RELEASE_JUNIT=${report}",
                  "RELEASE_APPROVER=${args.approvedBy ?: ''}"]
    releaseCli.withRelease(args, extra, true) {
        int code = -1
        try {
            code = releaseCli.execute(promoteScript(args.approvedBy as boolean, args.dryRun as boolean))
        } finally {
            releaseCli.publishJUnit(report)
            releaseCli.archiveRecords()
            String outcome = args.dryRun ? (code == 0 ? 'gate passed (dry run)' : 'gate refused (dry run)')
                    : (code == 0 ? "promoted, approved by ${args.approvedBy ?: 'nobody'}" : (code == 1 ? 'gate refused' : 'promote failed'))
            releaseCli.describe(version, target, outcome)
        }
        releaseCli.failOn("release promote to ${target}", code)
    }
}

/** One literal per variant, so that the contract test sees every invocation. */
String promoteScript(boolean approved, boolean dryRun) {
    if (approved) {
        return dryRun
            ? '"$RELEASE_BIN" promote --version "$RELEASE_VERSION" --to "$RELEASE_ENV" --approved-by "$RELEASE_APPROVER" --junit "$RELEASE_JUNIT" --dry-run'
            : '"$RELEASE_BIN" promote --version "$RELEASE_VERSION" --to "$RELEASE_ENV" --approved-by "$RELEASE_APPROVER" --junit "$RELEASE_JUNIT"'
    }
    return dryRun
        ? '"$RELEASE_BIN" promote --version "$RELEASE_VERSION" --to "$RELEASE_ENV" --junit "$RELEASE_JUNIT" --dry-run'
        : '"$RELEASE_BIN" promote --version "$RELEASE_VERSION" --to "$RELEASE_ENV" --junit "$RELEASE_JUNIT"'
}
