// releaseVersion(file: 'VERSION'): the version this build ships, VERSION-bBUILD_NUMBER.
// See releaseVersion.txt.

String call(Map args = [:]) {
    String path = args.file ?: 'VERSION'
    String base = readFile(path).trim()
    if (!(base ==~ /[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?/)) {
        error("releaseVersion: ${path} must hold MAJOR.MINOR.PATCH (e.g. 1.4.0), not `${base}`")
    }
    String build = args.buildNumber ?: env.BUILD_NUMBER
    if (!build) {
        error('releaseVersion: no BUILD_NUMBER')
    }
    // A pre-release base (1.4.0-rc.1) gets the build as one more identifier: 1.4.0-rc.1.b42.
    return base.contains('-') ? "${base}.b${build}" : "${base}-b${build}"
}
