// releaseBuild(version: '1.4.0-b42', services: ['api'], gitCommit: '...'): `release build`.
// See releaseBuild.txt.

void call(Map args = [:]) {
    String version = args.version ?: env.RELEASE_VERSION
    if (!version) {
        error('releaseBuild: pass version (or set RELEASE_VERSION)')
    }
    List extra = ["RELEASE_VERSION=${version}", "RELEASE_SERVICES=${(args.services ?: []).join(' ')}"]
    if (args.gitCommit) {
        extra << "GIT_COMMIT=${args.gitCommit}"
    }
    // Building needs no registry credentials: the images are only tagged here.
    releaseCli.withRelease(args, extra, false) {
        int code = releaseCli.execute('''
            set --
            for service in $RELEASE_SERVICES; do set -- "$@" --service "$service"; done
            "$RELEASE_BIN" build --version "$RELEASE_VERSION" "$@"
        ''')
        releaseCli.describe(version, null, code == 0 ? 'built' : 'build failed')
        releaseCli.failOn('release build', code)
    }
}
