"""One module per child stack, each exposing ``template(settings) -> troposphere.Template``."""
