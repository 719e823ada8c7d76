"""The ``aws`` backend: Amazon Web Services EC2 instances, reached over SSH.

Its SDK (boto3) is the ``aws`` pip extra and is imported only inside functions of this
package, never when the plugin is loaded. Modules: :mod:`~skyhop_aws.catalog` (the bundled
instance types and prices), :mod:`~skyhop_aws.errors` (AWS error codes -> typed errors),
:mod:`~skyhop_aws.ec2` (blocking EC2 steps), :mod:`~skyhop_aws.provisioner` (the
lifecycle), :mod:`~skyhop_aws.plugin` (the hooks).
"""
