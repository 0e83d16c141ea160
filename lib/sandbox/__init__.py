"""The embedded AWS sandbox: moto in server mode plus the AWS behaviour moto lacks."""
