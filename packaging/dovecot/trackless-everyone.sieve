# trackless for everyone, unless they opt out: a global script that Dovecot runs before each
# user's own script (sieve_before in 90-sieve-extprograms.conf), e.g. as
# /etc/dovecot/sieve/trackless-everyone.sieve, compiled once with
#   sievec /etc/dovecot/sieve/trackless-everyone.sieve
#
# To opt out, a user stores a Sieve script named "trackless-optout" with ManageSieve (its
# content does not matter, e.g. "keep;"; do not activate it), which Dovecot keeps as
# ~/sieve/trackless-optout.sieve, or creates the file ~/.trackless-optout. The filter program
# (packaging/dovecot/trackless-filter) then passes that user's mail on unchanged.
require "vnd.dovecot.filter";
filter "trackless" ["--unless-opted-out"];
