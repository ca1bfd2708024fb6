# trackless for one user ("only those who opt in"): remove email trackers from every message
# before it is filed. Put these lines at the top of your active Sieve script (with ManageSieve,
# e.g. Roundcube's "Filters" > "Actions" > "Edit filter set", or as ~/.dovecot.sieve), before
# any fileinto: the rules that follow see the cleaned message. The removed trackers are listed
# by `trackless report`, run as you (see packaging/dovecot/README.md).
#
# `filter` is also a test: it is false when the program could not run, and the message then
# stays as it was. Add ["--no-log"] after "trackless" to keep no tracking log.
require "vnd.dovecot.filter";
filter "trackless";
